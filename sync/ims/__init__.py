"""IMS ES: the PMS, GMS and MMS clients over one shared exchange (zeep, HTTPS, WS-Security), and our WSDLs.

The only place that speaks SOAP and translates foreign exceptions into `sync.errors`.
"""
