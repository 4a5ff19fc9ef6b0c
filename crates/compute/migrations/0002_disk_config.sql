-- OS-DCF:diskConfig as requested (AUTO or MANUAL); Nubo never resizes partitions itself.
ALTER TABLE compute_servers ADD COLUMN disk_config TEXT NOT NULL DEFAULT 'MANUAL';
