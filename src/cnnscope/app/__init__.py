"""The user-facing shells: the command line, the HTML report and the web explorer."""
