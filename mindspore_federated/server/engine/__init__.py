"""The server engine: iteration lifecycle, round windows, sync and event loops, drain and reply cache.

Nothing here knows the device protocol (flatbuffers, replies, round handlers): the rounds call into the
engine, and the engine answers the HTTP layer only through the reply cache.
"""
