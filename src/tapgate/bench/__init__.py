"""Load benchmark of push logins: provisioning, simulated devices and applications, reports.

`tapgate bench` starts a separate `tapgate serve` process, fills its database directly through
tapgate's own models (a real enrollment costs two HTTP round trips per device, too slow for
100,000 devices), holds one server-sent-events stream per simulated device, and drives
concurrent logins through the Auth API for a fixed time. See docs/benchmarks.md.
"""
