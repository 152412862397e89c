"""The REST API's shared parts: authentication, permissions, errors, pagination, schema and the router."""
