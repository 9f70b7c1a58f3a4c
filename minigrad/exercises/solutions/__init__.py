"""Reference solutions of the exercises, one file per exercise (same names as `stubs/`).

Look here after you have tried: each backward is written out with its derivation.
`python -m minigrad.exercises check NAME --solution` runs the checker on these.
"""
