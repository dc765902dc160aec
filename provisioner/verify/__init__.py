"""`lab verify`: the lab's isolation claims as testinfra checks, runnable against any lab.

The checks live in `checks/`, one module per claim of `claims` (the registry verify, the
report and the README read), and use the fixtures of `plugin` (also usable by users as
`pytest --lab LAB`).
"""
