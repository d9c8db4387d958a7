"""Bank statements read from files (CSV, OFX, MT940, camt.053, BAI2) into the records of decide/bank.py.

Input only: a statement file is opened for reading and never changed, moved or deleted. A file the job
cannot read is one StatementError naming the file and the line. No account number or IBAN leaves a reader
beyond its last four characters.
"""
