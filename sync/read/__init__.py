"""Read: mapping files and roster CSVs (a file or a folder) into canonical frames and row-numbered rejects.

Pure of the network and the snapshot: it reads the files it is given and nothing else.
"""
