"""CLI: argv, environment and config file into wiring, terminal output and exit codes (`ims-sync`)."""
