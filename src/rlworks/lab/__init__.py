"""The live grid-world lab: a browser page where Q-values flood backward from the goal while
rlworks' compiled tabular learner runs in Python (``rlworks lab``)."""
