"""IMS ES: the PMS, GMS and MMS clients over one shared exchange (zeep, HTTPS, WS-Security), and our WSDLs.

The only place that imports zeep and requests, and that translates their exceptions into `sync.errors`.
The rooms, from the wire up:

```
wire.py         namespaces, RequestBody, ServiceSpec, KindXml (what a kind supplies)
person_xml.py   the person element in lxml, written and read (no zeep: the emulator shares it)
persons.py      the person element and PMS (+ readAllPersons' paging)      } one per kind: its XML shape
groups.py       the group element and GMS                                  } and its service
memberships.py  the membership element and MMS                            }
bodies.py       the request bodies every kind shares, over `KIND_XML`
security.py     the WS-Security UsernameToken header
urls.py         https only; GMS/MMS/Extended endpoints next to the PMS one
faults.py       every foreign exception → `sync.errors`
answers.py      reading an answer: HTTP status, safe parse, faults, statuses vs our messageIdentifier
deadline.py     each exchange within a wall-clock bound (a watchdog cuts its socket) and a size limit
exchange.py     ServiceClient: WSDL, rendering (zeep or direct), sending, checking
clients.py      PersonClient, GroupClient, MembershipClient
xsd.py          the WSDLs' schemas as one lxml validator (emulator and tests)
```
"""
