"""Serving: a TF-Serving-compatible server (gRPC and REST) and its clients.

Owns the network protocol around exported SavedModels. Must not build or train models.
"""
