"""Function apps that exist only for the dev host's end-to-end tests (loaded with ``--app``)."""
