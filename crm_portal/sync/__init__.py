"""CRM sync: external references, idempotent upserts, field ownership and deletion policies.

- :mod:`.ownership`: which fields the CRM owns (``SYNC_CRM_OWNED_FIELDS``) and which the portal
  always keeps; CRM-owned fields of a linked record are read-only in "My data" and the admin.
- :mod:`.upsert`: create, link (by VAT number, email domain or email), update or leave unchanged
  one record by its external id; several matches make a :class:`~crm_portal.models.SyncConflict`.
- :mod:`.files`: files a push carries for a module's records (``Module.sync_files``: a document's
  file in base64), checked by the upload rules, compared by content, replaced after the commit.
- :mod:`.deletion`: what a deletion in the CRM does here (``SYNC_DELETION_POLICY``) and the
  periodic job that deletes records after ``SYNC_DELETE_AFTER_DAYS``.

The REST endpoints are in :mod:`crm_portal.rest.sync`, the CSV import in :mod:`crm_portal.importer`.
"""
