"""Generating a dbt project from approved mapping specs and running it in-process with a warm manifest."""
