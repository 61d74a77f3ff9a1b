"""json_extract: Skip's jsonExtract — its pattern lexer, parser, types and the extraction itself."""
