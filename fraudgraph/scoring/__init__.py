"""Scoring: the decision rules (:mod:`.rules`), batch scoring of a whole graph (:mod:`.batch`) and
online scoring from a store (:mod:`.online`)."""
