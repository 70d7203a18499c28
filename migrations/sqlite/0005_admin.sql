-- Administration: lookups the settings pages and the audit log filters need.
CREATE INDEX audit_log_by_ticket ON audit_log(ticket);
CREATE INDEX audit_log_by_organization ON audit_log(organization_id);
CREATE INDEX audit_log_by_at ON audit_log(at);
CREATE INDEX company_mappings_by_organization ON company_mappings(organization_id);
