"""One module per command; each registers itself on ``ekm.cli.app.app``."""
