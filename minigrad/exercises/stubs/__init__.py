"""The exercise stubs: one file per exercise, the file a learner edits.

Each holds a forward that is given and a backward (or, for the DPO losses, a
gradient function) that raises NotImplementedError until you write it. Check
one with `python -m minigrad.exercises check NAME`.
"""
