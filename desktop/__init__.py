"""`python main.py --desktop`: the editor in a native window (pywebview) over a private server.

The server runs on a free loopback port with a per-launch token; the window is the only client
that knows the token. Closing the window stops the server the same way Ctrl+C does (the running
job is interrupted and recorded as such; the queue persists). A second launch hands its files to
the first window and exits (desktop/instance.py). Nothing here is imported unless asked for.
"""
