-- The orphan-blob sweep (src/storage/orphan-sweep.ts) asks, for a batch of blob keys, which ones a
-- row still refers to; without these it would scan both tables in full for every batch.
CREATE INDEX dicom_instance_blob_key ON dicom_instance (blob_key);
CREATE INDEX binary_content_blob_key ON binary_content (blob_key);
