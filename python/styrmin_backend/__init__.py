"""Styrmin's helper package for driver actions (SPEC §5).

Existing drivers import their primitives from ``styrmin_backend.actions``; the agent puts
this package on ``sys.path`` when it runs an action, and the primitives call back to the
agent over a private Unix socket.
"""
