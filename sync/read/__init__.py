"""Read: mapping files and roster CSVs (a file or a folder) into canonical frames and row-numbered rejects.

A set mapping's persons may come from several files joined on the sync key (`persons`: fields, roles,
guardians' children); each file is otherwise read on its own (`roster`).

Pure of the network and the snapshot: it reads the files it is given and nothing else.
"""
