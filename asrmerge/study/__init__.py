"""``asrmerge study``: the paper's multi-domain merge experiment on the user's own fine-tunes and test sets.

:mod:`config` (options, config file), :mod:`inputs` (checks before any work), :mod:`plan` (the asrmerge
commands, commands.sh), :mod:`steps` (running them resumably), :mod:`runner` (the study end to end),
:mod:`report` (results.md, table.json, per-domain.jsonl, chart.png).
"""
