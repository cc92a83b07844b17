"""The pure core that decides: which files fit, which builds run on this hardware, torch
and its companions, the plan.
"""
