"""connecto: EM volumes to connectomes.

``import connecto`` is cheap: stages import their heavy dependencies where used.
"""

__version__ = "0.1.0"
