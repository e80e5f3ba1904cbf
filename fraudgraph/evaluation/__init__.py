"""Evaluation against labels and ground truth: ranking metrics (:mod:`.ranking`) and decisions and the
live stream judged against ground truth (:mod:`.live`)."""
