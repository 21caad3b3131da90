from __future__ import annotations

from resolver.start import main

main()
