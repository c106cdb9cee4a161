"""Sans-IO codecs shared by the API and the client."""
