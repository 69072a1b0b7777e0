"""The built-in data's catalogue: tools (JSON Schemas), entity lists, and what each tool returns.

Used by data/generate.py (see there). Every fourth entity of each list is held out for the test split.
"""


def tool(name, description, properties, required):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


def s(description, **extra):
    return {"type": "string", "description": description, **extra}


DATE, TIME = "Date as YYYY-MM-DD.", "Time as HH:MM, 24-hour clock."
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK"]
LANGUAGES = ["French", "German", "Spanish", "Italian", "Portuguese"]
TOOLS = {t["function"]["name"]: t for t in [
    tool("get_weather", "Get the current weather, or a forecast, for a city.",
         {"city": s("City name, e.g. Lisbon."), "unit": s("Temperature unit.", enum=["celsius", "fahrenheit"]),
          "days": {"type": "integer", "description": "Number of forecast days, 1 to 7."}}, ["city"]),
    tool("search_knowledge_base", "Search internal company documents, policies and project data.",
         {"query": s("What to search for.")}, ["query"]),
    tool("search_web", "Search public information on the web.",
         {"query": s("What to search for."),
          "max_results": {"type": "integer", "description": "How many results to return."}}, ["query"]),
    tool("send_email", "Send an email.",
         {"to": s("Recipient email address."), "subject": s("Subject line."), "body": s("Message text."),
          "cc": {"type": "array", "items": {"type": "string"}, "description": "Addresses to copy."}},
         ["to", "subject", "body"]),
    tool("create_calendar_event", "Create an event in the user's calendar.",
         {"title": s("Event title."), "date": s(DATE), "time": s(TIME),
          "duration_minutes": {"type": "integer", "description": "Length in minutes."},
          "attendees": {"type": "array", "items": {"type": "string"}, "description": "Attendee email addresses."}},
         ["title", "date", "time"]),
    tool("set_reminder", "Remind the user about something at a given time.",
         {"text": s("What to remind the user of."), "time": s(TIME), "date": s(DATE + " Defaults to today.")},
         ["text", "time"]),
    tool("convert_currency", "Convert an amount of money between currencies at today's rate.",
         {"amount": {"type": "number", "description": "Amount to convert."},
          "from_currency": s("ISO code of the source currency.", enum=CURRENCIES),
          "to_currency": s("ISO code of the target currency.", enum=CURRENCIES)},
         ["amount", "from_currency", "to_currency"]),
    tool("get_stock_price", "Get the latest stock price for a ticker symbol.",
         {"symbol": s("Ticker symbol, e.g. AAPL.")}, ["symbol"]),
    tool("book_restaurant", "Book a table at a restaurant.",
         {"restaurant": s("Restaurant name."), "party_size": {"type": "integer", "description": "Number of people."},
          "date": s(DATE), "time": s(TIME),
          "outdoor_seating": {"type": "boolean", "description": "Ask for a table outside."}},
         ["restaurant", "party_size", "date", "time"]),
    tool("translate_text", "Translate text into another language.",
         {"text": s("Text to translate."), "target_language": s("Language to translate into.", enum=LANGUAGES)},
         ["text", "target_language"]),
    tool("create_support_ticket", "Open an IT support ticket.",
         {"title": s("Short description of the problem."),
          "priority": s("How urgent it is.", enum=["low", "medium", "high", "urgent"])}, ["title", "priority"]),
    tool("play_music", "Play a song, artist, album or playlist.",
         {"query": s("What to play."), "shuffle": {"type": "boolean", "description": "Shuffle the tracks."}},
         ["query"]),
    tool("get_flight_status", "Get the status of a flight.",
         {"flight_number": s("Flight number, e.g. BA117."), "date": s(DATE + " Defaults to today.")},
         ["flight_number"]),
    tool("add_todo", "Add a task to the user's to-do list.",
         {"task": s("The task."), "due_date": s(DATE),
          "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels for the task."}}, ["task"]),
    tool("get_order_status", "Look up the status of an online order.", {"order_id": s("Order ID.")}, ["order_id"]),
    tool("set_thermostat", "Set the target temperature of a smart thermostat.",
         {"temperature": {"type": "number", "description": "Target temperature in degrees Celsius."},
          "room": s("Room name."), "mode": s("Operating mode.", enum=["heat", "cool", "auto"])}, ["temperature"]),
    tool("calculate_loan_payment", "Compute the monthly payment of a fixed-rate loan.",
         {"principal": {"type": "number", "description": "Amount borrowed."},
          "annual_rate": {"type": "number", "description": "Annual interest rate in percent, e.g. 4.5."},
          "years": {"type": "integer", "description": "Loan term in years."}}, ["principal", "annual_rate", "years"]),
]}
SEARCH_TOOLS = {"search_knowledge_base", "search_web"}  # never distractors: they could serve almost any question

# ---------------------------------------------------------------------------------------------------------
# Entities (split: every fourth item of each list is held out for the test set)

ENTITIES = {
    "city": "Lisbon Oslo Nairobi Denver Kyoto Porto Seville Auckland Montreal Reykjavik Hanoi Lima Tallinn Zurich "
            "Marseille Chicago Bergen Valencia Krakow Boston Dublin Cairo Helsinki Seattle Bologna Austin Prague "
            "Santiago Vienna Toronto Lyon Melbourne Edinburgh Munich Athens Bangkok Warsaw Quito Geneva Osaka".split(),
    "name": "Dana Omar Priya Lucas Mei Tomas Aisha Jonas Elena Kofi Sara Mateo Yuki Nadia Felix Ines Ravi Hana "
            "Leon Zara Iris Malik Greta Hugo Lena Arjun Chloe Emil Noor Pablo Ada Theo".split(),
    "symbol": "AAPL MSFT NVDA AMZN GOOGL TSLA META NFLX IBM ORCL INTC AMD SAP ADBE CRM UBER SHOP SNOW KO PEP".split(),
    "restaurant": ["Nopa", "Blue Fig", "Casa Lola", "The Anchor", "Sakura House", "Luigi's", "Green Table",
                   "Le Petit Zinc", "Spice Route", "Harbor Grill", "Olive & Thyme", "Noodle Bar 88", "The Copper Pot",
                   "Bistro Sol", "Kimchi Garden", "Taverna Mykonos"],
    "song": ["Bohemian Rhapsody", "my focus playlist", "Miles Davis", "Clair de Lune", "the Abbey Road album",
             "Billie Eilish", "lo-fi beats", "Daft Punk", "my running mix", "Vivaldi's Four Seasons", "Adele",
             "jazz for a rainy day", "Fleetwood Mac", "the Hamilton soundtrack", "Nina Simone", "Radiohead"],
    "task": ["renew my passport", "call the plumber", "buy a birthday gift for Sam", "submit the expense report",
             "water the plants", "book a dentist appointment", "return the library books", "pay the electricity bill",
             "update my CV", "clean the garage", "order new printer ink", "cancel the gym membership",
             "write the quarterly review", "pick up the dry cleaning", "back up my laptop", "plan the team offsite"],
    "event": ["Sprint planning", "Coffee with Jordan", "Quarterly review", "Dentist", "Team lunch", "Yoga class",
              "Budget meeting", "Design review", "Parent-teacher meeting", "Interview with candidate",
              "Board call", "Product demo", "1:1 with manager", "Book club", "Hackathon kickoff", "Client workshop"],
    "subject": ["Q3 report", "Lunch on Friday", "Project update", "Invoice 4471", "Holiday schedule",
                "Welcome aboard", "Meeting notes", "Contract draft", "Trip itinerary", "Feedback on the demo",
                "Server maintenance", "Thank you", "New office address", "Budget approval", "Launch checklist",
                "Reference letter"],
    "body": ["The numbers look good, see you at the review.", "Can we move our call to next week?",
             "Please find the latest draft attached.", "Thanks for your help yesterday!",
             "The deploy is done and everything is green.", "Could you send me the signed copy?",
             "I will be out of office until Monday.", "Let's meet at the main entrance at noon.",
             "Reminder that the deadline is tomorrow.", "Great work on the launch, team.",
             "Please review the attached contract.", "I booked the tickets for our trip.",
             "Dinner is on me this time.", "The printer on floor 2 is fixed.",
             "Can you confirm the budget by Thursday?", "Happy to help with the onboarding."],
    "ticket": ["Laptop will not turn on", "VPN keeps disconnecting", "Cannot access the shared drive",
               "Outlook crashes on startup", "Need a new monitor", "Password reset for the HR portal",
               "Printer on floor 3 is jammed", "Wi-Fi is slow in meeting room B", "Docker license request",
               "Phone not syncing email", "Keyboard keys are stuck", "Zoom audio not working",
               "Request access to the sales dashboard", "Blue screen after update", "Mouse battery died",
               "Software install: Figma"],
    "room": ["living room", "bedroom", "office", "kitchen", "nursery", "basement", "guest room", "studio"],
    "internal": ["parental leave policy", "expense report deadline", "VPN setup for the Berlin office",
                 "Q3 sales targets", "onboarding checklist for new engineers", "on-call rotation for the payments team",
                 "guest Wi-Fi password for the 4th floor", "travel meal reimbursement limit", "Project Chimera roadmap",
                 "security incident reporting procedure", "holiday calendar for the Dublin office",
                 "code review guidelines", "laptop refresh policy", "org chart of the data team",
                 "release process for the mobile app", "remote work stipend rules", "brand guidelines for slides",
                 "procurement approval limits", "incident postmortem template", "office dog policy"],
    "public": ["latest stable Python release", "population of Canada", "history of the Eiffel Tower",
               "best practices for writing Dockerfiles", "difference between REST and GraphQL",
               "tallest mountains in Africa", "how vaccines train the immune system", "rules of cricket",
               "winner of the 2022 World Cup", "boiling point of water at high altitude", "SQL window functions tutorial",
               "when the James Webb telescope launched", "healthy breakfast ideas", "how to undo a git commit",
               "symptoms of vitamin D deficiency", "cheapest time to fly to Japan", "meaning of the word serendipity",
               "how solar panels work", "React useEffect examples", "origin of the croissant"],
    "phrase": ["good morning", "thank you very much", "where is the train station", "the meeting is cancelled",
               "see you tomorrow", "how much does this cost", "I would like a coffee", "happy birthday"],
    "word": "planet garden rocket silver window marble pencil harbor lantern velvet orchid thunder meadow "
            "compass blanket crystal".split(),
    "food": ["pizza", "sushi", "a burrito", "pad thai", "a burger", "ramen", "a salad", "dumplings"],
}
TRANSLATIONS = {  # phrase -> translations in LANGUAGES order
    "good morning": ["bonjour", "guten Morgen", "buenos días", "buongiorno", "bom dia"],
    "thank you very much": ["merci beaucoup", "vielen Dank", "muchas gracias", "grazie mille", "muito obrigado"],
    "where is the train station": ["où est la gare", "wo ist der Bahnhof", "dónde está la estación de tren",
                                   "dov'è la stazione", "onde fica a estação de comboios"],
    "the meeting is cancelled": ["la réunion est annulée", "das Meeting ist abgesagt", "la reunión está cancelada",
                                 "la riunione è annullata", "a reunião foi cancelada"],
    "see you tomorrow": ["à demain", "bis morgen", "hasta mañana", "a domani", "até amanhã"],
    "how much does this cost": ["combien ça coûte", "wie viel kostet das", "cuánto cuesta esto",
                                "quanto costa questo", "quanto custa isto"],
    "I would like a coffee": ["je voudrais un café", "ich hätte gern einen Kaffee", "quisiera un café",
                              "vorrei un caffè", "queria um café"],
    "happy birthday": ["joyeux anniversaire", "alles Gute zum Geburtstag", "feliz cumpleaños", "buon compleanno",
                       "feliz aniversário"],
}
CONDITIONS = ["sunny", "cloudy", "light rain", "windy", "clear", "foggy", "snowing", "partly cloudy"]


def split_entities(split):
    keep = (lambda i: i % 4 == 3) if split == "test" else (lambda i: i % 4 != 3)
    return {kind: [x for i, x in enumerate(items) if keep(i)] for kind, items in ENTITIES.items()}


class Draw:
    """Random choices from one split's entities."""

    def __init__(self, rng, entities):
        self.rng, self.e = rng, entities

    def __getattr__(self, kind):  # d.city -> a random city of this split
        return self.rng.choice(self.e[kind])

    def pick(self, options):
        return self.rng.choice(options)

    def chance(self, p):
        return self.rng.random() < p

    def date(self):
        return f"2025-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"

    def time(self):
        return f"{self.rng.randint(7, 21):02d}:{self.pick(['00', '15', '30', '45'])}"

    def email(self, name=None):
        return f"{(name or self.name).lower()}@{self.pick(['example.com', 'acme.io', 'mail.net'])}"

    def two(self, kind):
        return self.rng.sample(self.e[kind], 2)



def degrees(unit):
    return "°F" if unit == "fahrenheit" else "°C"


def result_for(d, name, a):
    if name == "get_weather":
        unit = a.get("unit", "celsius")
        if "days" in a:
            days = [{"day": i + 1, "high": d.rng.randint(5, 30), "condition": d.pick(CONDITIONS)}
                    for i in range(a["days"])]
            listing = "; ".join(f"day {x['day']}: {x['condition']}, high {x['high']}{degrees(unit)}" for x in days)
            return {"city": a["city"], "unit": unit, "forecast": days}, f"Forecast for {a['city']}: {listing}."
        temp, cond = d.rng.randint(-5, 35), d.pick(CONDITIONS)
        return ({"city": a["city"], "temperature": temp, "unit": unit, "condition": cond},
                f"It's {temp}{degrees(unit)} and {cond} in {a['city']} right now.")
    if name in SEARCH_TOOLS:
        where = "internal wiki" if name == "search_knowledge_base" else "web"
        title = a["query"][0].upper() + a["query"][1:]
        url = ("https://wiki.internal/" if where == "internal wiki" else "https://www.example.org/") + \
            a["query"].lower().replace(" ", "-")
        return ({"results": [{"title": title, "url": url}]},
                f"I found one page on the {where}: \"{title}\" ({url}).")
    if name == "send_email":
        return {"status": "sent"}, f"Sent: your email \"{a['subject']}\" to {a['to']} is on its way."
    if name == "create_calendar_event":
        return ({"status": "created", "event_id": f"evt_{d.rng.randint(1000, 9999)}"},
                f"\"{a['title']}\" is on your calendar for {a['date']} at {a['time']}.")
    if name == "set_reminder":
        return {"status": "scheduled"}, f"Okay, I'll remind you to {a['text']} at {a['time']}."
    if name == "convert_currency":
        rate = round(d.rng.uniform(0.5, 1.6), 4)
        value = round(a["amount"] * rate, 2)
        return ({"amount": a["amount"], "from": a["from_currency"], "to": a["to_currency"], "rate": rate,
                 "converted": value},
                f"{a['amount']} {a['from_currency']} is {value:.2f} {a['to_currency']} at today's rate of {rate}.")
    if name == "get_stock_price":
        price, change = round(d.rng.uniform(20, 900), 2), round(d.rng.uniform(-4, 4), 2)
        move = f"up {change}%" if change >= 0 else f"down {-change}%"
        return ({"symbol": a["symbol"], "price": price, "currency": "USD", "change_percent": change},
                f"{a['symbol']} is at {price:.2f} USD, {move} today.")
    if name == "book_restaurant":
        code = f"R{d.rng.randint(10000, 99999)}"
        return ({"status": "confirmed", "confirmation": code},
                f"Booked: a table for {a['party_size']} at {a['restaurant']} on {a['date']} at {a['time']}. "
                f"Your confirmation code is {code}.")
    if name == "translate_text":
        translation = TRANSLATIONS[a["text"]][LANGUAGES.index(a["target_language"])]
        return {"translation": translation}, f"In {a['target_language']}, \"{a['text']}\" is \"{translation}\"."
    if name == "create_support_ticket":
        ticket = f"IT-{d.rng.randint(1000, 9999)}"
        return ({"ticket_id": ticket, "status": "open"},
                f"I opened ticket {ticket}, \"{a['title']}\", with {a['priority']} priority.")
    if name == "play_music":
        return {"status": "playing"}, f"Now playing {a['query']}" + (" on shuffle." if a.get("shuffle") else ".")
    if name == "get_flight_status":
        status, gate = d.pick(["on time", "delayed by 40 minutes", "boarding", "departed"]), f"{d.pick('ABCD')}" \
            f"{d.rng.randint(1, 40)}"
        return ({"flight_number": a["flight_number"], "status": status, "gate": gate},
                f"Flight {a['flight_number']} is {status}, gate {gate}.")
    if name == "add_todo":
        return {"status": "added"}, f"Added \"{a['task']}\" to your to-do list."
    if name == "get_order_status":
        status, day = d.pick(["shipped", "out for delivery", "processing"]), d.date()
        return ({"order_id": a["order_id"], "status": status, "estimated_delivery": day},
                f"Order {a['order_id']} is {status}; estimated delivery is {day}.")
    if name == "set_thermostat":
        where = f"the {a['room']}" if "room" in a else "the house"
        return {"status": "ok", "target": a["temperature"]}, f"Done: {where} is set to {a['temperature']}°C."
    if name == "calculate_loan_payment":
        r, n = a["annual_rate"] / 1200, a["years"] * 12
        payment = round(a["principal"] * r / (1 - (1 + r) ** -n), 2)
        return {"monthly_payment": payment}, f"The monthly payment would be {payment:,.2f}, over {n} payments."
    raise KeyError(name)

