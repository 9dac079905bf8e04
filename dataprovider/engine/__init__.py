"""What a server runs: answers from the cache, refreshed from a source.

* :mod:`~dataprovider.engine.service`: ``DataService``, which orchestrates one query end to end;
* :mod:`~dataprovider.engine.downloads`: bringing a dataset up to date from the source, under its lock;
* :mod:`~dataprovider.engine.refresh`: what to download and how to merge it (pure functions on frames);
* :mod:`~dataprovider.engine.seeding`: loading sample data and users' files into the cache;
* :mod:`~dataprovider.engine.store`, :mod:`~dataprovider.engine.datasets`, :mod:`~dataprovider.engine.locks` and
  :mod:`~dataprovider.engine.memory_cache`: the cache on disk (its files, their facts, their locks) and in memory;
* :mod:`~dataprovider.engine.window`: the rules that cut a query's window out of a dataset;
* :mod:`~dataprovider.engine.resample` and :mod:`~dataprovider.engine.derive`: coarser bars derived from finer ones;
* :mod:`~dataprovider.engine.feeds`: live bars, polled from the source or replayed from the cache.

Sources (where bars come from) are plug-ins: :mod:`dataprovider.sources`. The engine
imports the protocol and the shared vocabulary, never the client.
"""
