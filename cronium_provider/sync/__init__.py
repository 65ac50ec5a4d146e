"""``cronium-airflow sync``: Cronium's REST API -> record files, Airflow Variables and SSH connections.

One sync:

1. fetches every event (``GET /api/events``, then ``GET /api/events/{id}`` for each, since Cronium's list
   carries no env vars, servers or actions), every workflow (``GET /api/workflows`` and each detail) and the
   servers the event details name. Any failure here (401, 500, timeout, a body that is not JSON) stops the
   sync before anything is changed. (:meth:`CroniumHook.fetch_snapshot`)

   A current Cronium has no workflow routes (its tRPC migration, commit ``649cdbe``, removed them; its
   catch-all ``apps/cronium-app/src/app/api/[...notfound]/route.ts:27-43`` answers 404). Then, and for a 405
   or a web page in their place, the events alone are synced, and one line says that workflows come from
   files in the records folder (Cronium's workflow download, a bare workflow object with each node's event
   nested), which the sync leaves as they are and counts. An event both synced and nested in such a file is
   one record: the synced copy is kept, and a nested copy that differs is reported (records/validation.py).
2. validates them with the record models, as the DAG processor will. An invalid record is reported with
   its id and field and left out of the file; every valid record is kept. (:mod:`.transform`)
3. stores the secrets in Airflow: env var values in the Variables ``cronium.env.<eventId>.<KEY>`` (one
   transaction), server keys and passwords in the SSH connections ``cronium_server_<id>``. (:mod:`.store`)
4. writes ``RECORDS_DIR/cronium-api/records.json``, a bundle ``{"events", "workflows", "servers"}`` with
   env var keys but no values and servers without credentials, through a hidden temporary file renamed
   over the old one: the DAG processor reads the old file or the new one, never half of one. (:mod:`.store`)
   The file holds what the API served and nothing else; no other file of the folder is written.

:mod:`.command` runs the steps and reports them. Secret values are never written to a file, printed or
logged; the names of the Variables are.

"""
