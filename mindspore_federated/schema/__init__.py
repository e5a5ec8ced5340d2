"""Wire schema of the device protocol: the .fbs sources and their generated Python tables (fbs/)."""
