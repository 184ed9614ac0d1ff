"""Teaching: tutorials (:mod:`.tutorials`, lessons 1-6) and animations (:mod:`.animate`).
May import runs and everything below; not the CLI.
"""
