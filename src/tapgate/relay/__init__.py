"""`tapgate relay`: a service in a DMZ or a cloud host that carries sealed challenges to devices.

Devices hold server-sent-events streams to the relay; tapgate servers hold one outbound
WebSocket link each. The relay sees only sealed challenges and device-signed answers, so it can
neither read a login's context nor forge a decision.
"""
