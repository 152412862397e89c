"""Ingest: a person's own files (CSV, Parquet, JSON/NDJSON) become tables of a source connection.

How an ingest runs (``services.files_ingest``; the ``ingest`` agent and ``manage.py ingest`` both call it):

1. Who asks. An agent acts for its mission: the connection must be granted to the mission
   (``agents.access.require_use``) and the files must lie under ``GENESIS_INGEST_ROOT``. The command line is the
   system: any connection, any path.
2. Which files (``files``). Files and folders are expanded into files with a known format, each with the table it
   lands in (named after the file, sanitised); an unknown format, an empty or too large file, too many files or two
   files for one table are refused before anything is read.
3. Reading (``reading``). A private, sandboxed DuckDB database reads every file whole, with DuckDB's own readers
   inferring the columns and their types (its CSV sniffer, its Parquet and JSON readers). A malformed file is
   refused here, naming the file, the line and the problem; the target has not been touched.
4. Writing (``writing``). In one transaction of the target (SQLite, DuckDB or PostgreSQL), each table is filled
   under a staging name and swapped in for the table of the same name: loading a file again replaces its table's
   content, never adds to it. Any failure rolls everything back.
5. The report (``services.IngestReport``): per file, its table, rows, columns with their inferred and declared
   types, size, SHA-256 and timings. The agent returns it as its outputs and attaches it as ``ingest_report.json``.

Nothing here imports DuckDB at start-up: the agent's module loads ``services`` when it runs.
"""
