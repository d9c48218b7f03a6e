"""The `rsigma` command line: thin typer commands over the engine and the daemon."""
