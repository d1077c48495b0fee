"""CLI: argv, environment and config file into wiring, terminal output and exit codes (`ims-sync`).

`app` is the command group and `main` (the console script); each command group has a module of its
own (`plan`: validate and plan; `run`: run and reconcile; `snapshot`; `mapping`), sharing `options`
(the shared options, config file and credentials), `stages` (the pipeline's stages, imported lazily),
`output` (exit codes, notices, written files), `summaries` (a plan's and a run's counts) and
`by_school` (the per-school report's flags and folder).
"""
