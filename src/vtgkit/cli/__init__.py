"""The ``vtgkit`` command line: one module per subcommand, discovered by ``vtgkit.cli.main``."""
