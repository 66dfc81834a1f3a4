"""connecto: EM volumes to connectomes.

``import connecto`` is cheap: stages import their heavy dependencies where used.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # lazy: the Connectome pulls in pandas and scipy, which `import connecto` must not
    if name == "Connectome":
        from connecto.connectome import Connectome

        return Connectome
    raise AttributeError(f"module 'connecto' has no attribute {name!r}")
