"""The synthetic identity-fraud world (:mod:`.world`) and its read-back statistics (:mod:`.stats`)."""
