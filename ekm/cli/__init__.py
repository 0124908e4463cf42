"""The ``ekm`` command (typer + rich). Only this package imports typer or rich."""
