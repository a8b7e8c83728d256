"""``liveness-audit follow``: capture the results of new sessions while they exist.

The application (or a Firehose delivery stream) drops files of new session IDs into a
folder or an S3 prefix; :class:`~batch.follow.capture.Capture` finds each new file
(:mod:`~batch.follow.source`), asks every new ID promptly under the run's limiter and retry
policy, settles pending sessions, journals every answer at once and publishes each day's
merged report (:mod:`~batch.follow.daybook`). Which files were consumed is remembered in
the work directory (:mod:`~batch.follow.consumed`), so a restart misses nothing and asks
no settled session again.
"""
