"""One module per HTTP function. Each is thin: parse the request, call shared/, render."""
