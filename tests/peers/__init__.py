"""Local protocol peers: each platform kobot talks to, served on 127.0.0.1 and recording what it got.

`loopback.py` holds what they share (the server thread and its event loop, the recording, fault
injection); each platform module holds only what that platform speaks.
"""
