"""Processes and nodes: where a room lives (this process, a media worker, another node) and how to reach it."""
