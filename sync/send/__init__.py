"""Send: the executor that runs a plan's phases within the in-flight budget, retries what is safe, and
resolves lost answers; it talks to IMS ES through `sync.ims` and records through `sync.state`.
"""
