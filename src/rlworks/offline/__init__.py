"""Offline RL: learning from a fixed dataset without environment access.

Here: ``rlworks.offline.tabular``, an exact tabular demonstration of extrapolation error (naive offline
Q-learning) and of its conservative fix (tabular CQL).
"""
