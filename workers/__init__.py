"""The multiprocess worker pool (`rsigma serve --workers N`): supervisor, matcher processes, rings.

Empty until the worker-pool issue; the package exists so the layout and packaging are settled.
"""
