"""Teaching: tutorials (:mod:`.tutorials`, lessons 1-5) and animations (:mod:`.animate`).
May import runs and everything below; not the CLI.
"""
