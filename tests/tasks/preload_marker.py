"""Imported by a worker cluster's preload in a test: writes the importing process's pid where the test says."""

import os

with open(os.environ["GENESIS_TEST_PRELOAD_MARKER"], "a") as marker:
    marker.write(f"{os.getpid()}\n")
