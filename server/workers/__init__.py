"""Execution outside the server process.

The server owns HTTP, websockets and the SQLite queue; prompts run in a worker process with its
own engine, model manager and output cache (`ProcessExecutor`). A worker that dies — a segfault
in a native extension, `os._exit` in a pack, the kernel's OOM killer — fails only the job it was
running; a fresh worker starts and the queue goes on. Cached values die with the worker.
"""
