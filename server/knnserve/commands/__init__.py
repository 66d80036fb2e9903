"""What the commands that are neither a layer of the service nor a batch job do: ``demo`` (train, serve,
classify the test split through the client, report) and ``classify`` / ``models`` through the client.

``cli/`` parses their options and calls these; nothing in the server imports them.
"""
