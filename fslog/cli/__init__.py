"""The ``fslog`` command line: parses, calls the library, formats. One module per command group."""
