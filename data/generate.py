"""Writes the built-in function-calling data: python data/generate.py -> data/train.jsonl, data/test.jsonl.

Deterministic (fixed seeds, stdlib only, no network): hand-written tools, phrasings and entity lists.
Eight categories, balanced: single_call, tool_choice, policy_choice, parallel, multi_turn,
answer_from_result, clarification, no_tool. The last assistant message of each example is its gold
answer (a call, calls, or a text reply); every argument value of a gold call is written in the user's
text exactly as it appears in the call, so a checker can compare strings. Entities are split between
train and test (every fourth goes to test) and no test example shares a user message with training.
Edit the lists below and rerun to grow the data; tests/test_builtin_data.py checks that the committed
files are exactly what this script writes.
"""

import json
import random
from pathlib import Path

SEED = 1234
PER_CATEGORY = {"train": 90, "test": 30}
OUT = Path(__file__).resolve().parent


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


# ---------------------------------------------------------------------------------------------------------
# Requests: each returns (user text, tool name, arguments); every argument is written in the text

def ask_weather(d):
    city, args = d.city, {}
    text = d.pick(["What's the weather in {c}?", "How warm is it in {c} right now?", "Weather for {c}, please.",
                   "Is it raining in {c}?", "Tell me the current conditions in {c}."]).format(c=city)
    args["city"] = city
    if d.chance(0.3):
        args["unit"] = d.pick(["celsius", "fahrenheit"])
        text += " " + d.pick(["In {u}, please.", "Give it to me in {u}.", "Use {u}."]).format(u=args["unit"])
    elif d.chance(0.2):
        args["days"] = d.rng.randint(2, 7)
        text = d.pick(["Give me the {n}-day forecast for {c}.", "What will the weather be in {c} over the next {n} "
                       "days?"]).format(n=args["days"], c=city)
    return text, "get_weather", args


def ask_kb(d):
    topic = d.internal
    text = d.pick(["What is our {t}?", "Can you find the {t} in the company wiki?", "Look up our internal docs on "
                   "the {t}.", "Where is the {t} documented internally?", "I need the {t} from our handbook.",
                   "Check our internal knowledge base for the {t}.", "What do our company policies say about "
                   "the {t}?"]).format(t=topic)
    return text, "search_knowledge_base", {"query": topic}


def ask_web(d):
    topic, args = d.public, {}
    text = d.pick(["Search the web for {t}.", "Can you look up {t} online?", "Find public information about {t}.",
                   "What does the internet say about {t}?", "Google {t} for me.", "Do a web search on {t}."]
                  ).format(t=topic)
    args["query"] = topic
    if d.chance(0.25):
        args["max_results"] = d.rng.randint(3, 10)
        text = text[:-1] + f" and show me {args['max_results']} results."
    return text, "search_web", args


def ask_email(d):
    name = d.name
    args = {"to": d.email(name), "subject": d.subject, "body": d.body}
    text = d.pick(['Email {to} with the subject "{subject}" and say "{body}"',
                   'Send an email to {to}, subject "{subject}", message: "{body}"',
                   'Write to {to}: subject "{subject}", body "{body}"',
                   'Please send {to} a note titled "{subject}" that says "{body}"']).format(**args)
    if d.chance(0.25):
        args["cc"] = [d.email()]
        text += f" and cc {args['cc'][0]}."
    return text, "send_email", args


def ask_event(d):
    args = {"title": d.event, "date": d.date(), "time": d.time()}
    text = d.pick(['Put "{title}" on my calendar for {date} at {time}.', 'Schedule "{title}" on {date} at {time}.',
                   'Create a calendar event called "{title}" on {date}, starting {time}.',
                   'Add "{title}" to my calendar, {date} at {time}.']).format(**args)
    if d.chance(0.3):
        args["duration_minutes"] = d.pick([15, 30, 45, 60, 90, 120])
        text = text[:-1] + f" for {args['duration_minutes']} minutes."
    if d.chance(0.2):
        args["attendees"] = [d.email()]
        text = text[:-1] + f" and invite {args['attendees'][0]}."
    return text, "create_calendar_event", args


def ask_reminder(d):
    args = {"text": d.task, "time": d.time()}
    text = d.pick(["Remind me to {text} at {time}.", "Set a reminder at {time} to {text}.",
                   "At {time}, remind me to {text}.", "Can you ping me at {time} to {text}?"]).format(**args)
    if d.chance(0.3):
        args["date"] = d.date()
        text = text[:-1] + f" on {args['date']}."
    return text, "set_reminder", args


def ask_currency(d):
    source, target = d.rng.sample(CURRENCIES, 2)
    amount = d.pick([d.rng.randint(5, 5000), round(d.rng.uniform(1, 900), 2)])
    args = {"amount": amount, "from_currency": source, "to_currency": target}
    text = d.pick(["Convert {a} {f} to {t}.", "How much is {a} {f} in {t}?", "What's {a} {f} worth in {t} today?",
                   "Change {a} {f} into {t} for me."]).format(a=amount, f=source, t=target)
    return text, "convert_currency", args


def ask_stock(d):
    symbol = d.symbol
    text = d.pick(["What's the stock price of {s}?", "How is {s} trading right now?", "Get me the latest {s} quote.",
                   "Check the share price for {s}."]).format(s=symbol)
    return text, "get_stock_price", {"symbol": symbol}


def ask_restaurant(d):
    args = {"restaurant": d.restaurant, "party_size": d.rng.randint(1, 10), "date": d.date(), "time": d.time()}
    text = d.pick(["Book a table for {party_size} at {restaurant} on {date} at {time}.",
                   "Reserve {restaurant} for {party_size} people, {date} at {time}.",
                   "Can you get us a table at {restaurant}? {party_size} people, {date}, {time}."]).format(**args)
    if d.chance(0.3):
        args["outdoor_seating"] = d.chance(0.5)
        text += " We'd like to sit outside." if args["outdoor_seating"] else " Inside, please, not outdoors."
    return text, "book_restaurant", args


def ask_translate(d):
    args = {"text": d.phrase, "target_language": d.pick(LANGUAGES)}
    text = d.pick(['Translate "{text}" into {target_language}.', 'How do you say "{text}" in {target_language}?',
                   'What is "{text}" in {target_language}?']).format(**args)
    return text, "translate_text", args


def ask_ticket(d):
    args = {"title": d.ticket, "priority": d.pick(["low", "medium", "high", "urgent"])}
    text = d.pick(['Open a {priority} priority IT ticket: "{title}".', 'File a support ticket "{title}" with '
                   '{priority} priority.', 'Raise an IT ticket titled "{title}", priority {priority}.']).format(**args)
    return text, "create_support_ticket", args


def ask_music(d):
    args = {"query": d.song}
    text = d.pick(["Play {q}.", "Put on {q}, please.", "I want to listen to {q}.", "Start playing {q}."]
                  ).format(q=args["query"])
    if d.chance(0.3):
        args["shuffle"] = True
        text = text[:-1] + " on shuffle."
    return text, "play_music", args


def flight_number(d):
    return d.pick(["BA", "LH", "AF", "KL", "UA", "DL", "IB", "SK", "AY", "TP"]) + str(d.rng.randint(10, 2999))


def ask_flight(d):
    args = {"flight_number": flight_number(d)}
    text = d.pick(["Is flight {f} on time?", "What's the status of {f}?", "Check flight {f} for me.",
                   "Has {f} departed yet?"]).format(f=args["flight_number"])
    if d.chance(0.3):
        args["date"] = d.date()
        text = text[:-1] + f" on {args['date']}" + text[-1]
    return text, "get_flight_status", args


def ask_todo(d):
    args = {"task": d.task}
    text = d.pick(['Add "{task}" to my to-do list.', 'Put "{task}" on my todo list.', 'New task: "{task}".']
                  ).format(**args)
    if d.chance(0.3):
        args["due_date"] = d.date()
        text = text[:-1] + f" Due {args['due_date']}."
    if d.chance(0.2):
        args["tags"] = [d.pick(["home", "work", "errands", "finance", "health"])]
        text = text + f" Tag it {args['tags'][0]}."
    return text, "add_todo", args


def ask_order(d):
    order = f"{d.pick(['A', 'B', 'X', 'Z'])}{d.rng.randint(100000, 999999)}"
    text = d.pick(["Where is my order {o}?", "Track order {o}.", "What's the status of order {o}?",
                   "Has order {o} shipped?"]).format(o=order)
    return text, "get_order_status", {"order_id": order}


def ask_thermostat(d):
    args = {"temperature": d.pick([18, 19, 20, 21, 22, 23, 24, 19.5, 20.5, 21.5])}
    text = d.pick(["Set the thermostat to {t} degrees.", "Make it {t} degrees.", "Change the heating to {t}°C."]
                  ).format(t=args["temperature"])
    if d.chance(0.5):
        args["room"] = d.room
        text = text[:-1] + f" in the {args['room']}."
    if d.chance(0.3):
        args["mode"] = d.pick(["heat", "cool", "auto"])
        text = text[:-1] + f", {args['mode']} mode."
    return text, "set_thermostat", args


def ask_loan(d):
    args = {"principal": d.pick([5000, 12000, 25000, 180000, 250000, 320000, 450000]),
            "annual_rate": d.pick([3.5, 4, 4.25, 5.1, 6.5, 7.2]), "years": d.pick([3, 5, 10, 15, 20, 25, 30])}
    text = d.pick(["What's the monthly payment on a {principal} loan at {annual_rate}% over {years} years?",
                   "Calculate my monthly payment: {principal} borrowed, {annual_rate}% interest, {years} years.",
                   "If I borrow {principal} for {years} years at {annual_rate}%, what do I pay per month?"]
                  ).format(**args)
    return text, "calculate_loan_payment", args


ASK = {"get_weather": ask_weather, "search_knowledge_base": ask_kb, "search_web": ask_web, "send_email": ask_email,
       "create_calendar_event": ask_event, "set_reminder": ask_reminder, "convert_currency": ask_currency,
       "get_stock_price": ask_stock, "book_restaurant": ask_restaurant, "translate_text": ask_translate,
       "create_support_ticket": ask_ticket, "play_music": ask_music, "get_flight_status": ask_flight,
       "add_todo": ask_todo, "get_order_status": ask_order, "set_thermostat": ask_thermostat,
       "calculate_loan_payment": ask_loan}


# ---------------------------------------------------------------------------------------------------------
# Tool results and the assistant's answer from them: (result dict, answer text)

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


# ---------------------------------------------------------------------------------------------------------
# Requests missing required information: (user text, tool, clarifying question, fill) where fill()
# gives the user's next message and the complete arguments (used by multi_turn)

def clarify_email(d):
    name, body = d.name, d.body
    text = d.pick(['Send an email to {n} saying "{b}"', 'Email {n}: "{b}"', 'Drop {n} a line: "{b}"']
                  ).format(n=name, b=body)
    to, subject = d.email(name), d.subject

    def fill():
        return f'Use {to}, with the subject "{subject}".', {"to": to, "subject": subject, "body": body}
    return text, "send_email", f"Sure. What is {name}'s email address, and what subject should I use?", fill


def clarify_restaurant(d):
    restaurant, size = d.restaurant, d.rng.randint(2, 8)
    text = d.pick(["Book a table at {r} for {n}.", "Get me a reservation at {r}, {n} people.",
                   "Can you reserve {r} for {n} of us?"]).format(r=restaurant, n=size)
    date, time = d.date(), d.time()

    def fill():
        return (d.pick(["{d} at {t}.", "On {d}, at {t} please.", "Make it {d}, {t}."]).format(d=date, t=time),
                {"restaurant": restaurant, "party_size": size, "date": date, "time": time})
    return text, "book_restaurant", f"Happy to. What date and time would you like the table at {restaurant}?", fill


def clarify_currency(d):
    source, target = d.rng.sample(CURRENCIES, 2)
    amount = d.rng.randint(10, 3000)
    text = d.pick(["Convert {a} {f}.", "How much is {a} {f} worth?", "I have {a} {f} to exchange."]
                  ).format(a=amount, f=source)

    def fill():
        return (d.pick(["To {t}.", "Into {t}, please.", "{t}."]).format(t=target),
                {"amount": amount, "from_currency": source, "to_currency": target})
    return text, "convert_currency", f"Which currency should I convert {amount} {source} into?", fill


def clarify_reminder(d):
    task, time = d.task, d.time()
    text = d.pick(["Remind me to {t}.", "Set a reminder to {t}.", "Don't let me forget to {t}."]).format(t=task)

    def fill():
        return d.pick(["At {t}.", "{t} works.", "Make it {t}."]).format(t=time), {"text": task, "time": time}
    return text, "set_reminder", f"What time should I remind you to {task}?", fill


def clarify_translate(d):
    phrase, language = d.phrase, d.pick(LANGUAGES)
    text = d.pick(['Translate "{p}" for me.', 'Can you translate "{p}"?', 'I need "{p}" translated.']).format(p=phrase)

    def fill():
        return d.pick(["{l}, please.", "Into {l}.", "{l}."]).format(l=language), {"text": phrase,
                                                                               "target_language": language}
    return (text, "translate_text", "Which language should I translate it into? I can do French, German, Spanish, "
            "Italian or Portuguese.", fill)


def clarify_weather(d):
    name, city = d.name, d.city
    text = d.pick(["I'm meeting {n} outside later. What's the weather like?", "Should I bring an umbrella when I "
                   "visit {n}?", "{n} asked me if it's cold out. What's the weather?"]).format(n=name)

    def fill():
        return d.pick(["In {c}.", "I'm in {c}.", "{c}, please."]).format(c=city), {"city": city}
    return text, "get_weather", "Which city should I check the weather for?", fill


def clarify_event(d):
    title, date, time = d.event, d.date(), d.time()
    text = d.pick(['Schedule "{t}" for me.', 'Add "{t}" to my calendar.', 'Put "{t}" in my calendar.']).format(t=title)

    def fill():
        return d.pick(["{d} at {t}.", "On {d}, starting {t}."]).format(d=date, t=time), {"title": title, "date": date,
                                                                                        "time": time}
    return text, "create_calendar_event", f"When should \"{title}\" be? I need a date and a start time.", fill


def clarify_flight(d):
    city, number = d.city, flight_number(d)
    text = d.pick(["Is my flight to {c} on time?", "Has my flight from {c} landed?", "Check my {c} flight."]
                  ).format(c=city)

    def fill():
        return d.pick(["It's {f}.", "Flight {f}.", "The number is {f}."]).format(f=number), {"flight_number": number}
    return text, "get_flight_status", "Sure. What's the flight number?", fill


def clarify_thermostat(d):
    room, temperature = d.room, d.pick([18, 19, 20, 21, 22, 23])
    text = d.pick(["Adjust the thermostat in the {r}.", "The {r} is uncomfortable, change the thermostat.",
                   "Change the {r} temperature."]).format(r=room)

    def fill():
        return d.pick(["{t} degrees.", "Set it to {t}.", "{t}°C, please."]).format(t=temperature), {
            "temperature": temperature, "room": room}
    return text, "set_thermostat", f"What temperature would you like in the {room}?", fill


def clarify_ticket(d):
    title, priority = d.ticket, d.pick(["low", "medium", "high", "urgent"])
    text = d.pick(['Open an IT ticket: "{t}".', 'File a support ticket saying "{t}".', 'Report to IT: "{t}".']
                  ).format(t=title)

    def fill():
        return d.pick(["{p} priority.", "Make it {p}.", "Priority {p}."]).format(p=priority), {"title": title,
                                                                                             "priority": priority}
    return text, "create_support_ticket", "What priority should it have: low, medium, high or urgent?", fill


def clarify_loan(d):
    principal, rate, years = d.pick([8000, 15000, 30000, 200000, 275000]), d.pick([3.9, 4.5, 5, 6.25]), d.pick(
        [5, 10, 20, 30])
    text = d.pick(["What would I pay each month on a {p} loan?", "I'm borrowing {p}. What's the monthly payment?"]
                  ).format(p=principal)

    def fill():
        return (d.pick(["{r}% over {y} years.", "{y} years at {r}%."]).format(r=rate, y=years),
                {"principal": principal, "annual_rate": rate, "years": years})
    return text, "calculate_loan_payment", "What's the annual interest rate, and how many years is the loan for?", fill


CLARIFY = [clarify_email, clarify_restaurant, clarify_currency, clarify_reminder, clarify_translate, clarify_weather,
           clarify_event, clarify_flight, clarify_thermostat, clarify_ticket, clarify_loan]


# ---------------------------------------------------------------------------------------------------------
# Requests no tool serves: (user text, direct reply)

def no_tool_request(d):
    a, b, word = d.rng.randint(11, 99), d.rng.randint(11, 99), d.word
    options = [
        (f"What is {a} times {b}?", f"{a} times {b} is {a * b}."),
        (f"What's {a} plus {b}?", f"{a} plus {b} is {a + b}."),
        (f"Subtract {b} from {a}.", f"{a} minus {b} is {a - b}."),
        (f'Spell "{word}" backwards.', f'"{word}" backwards is "{word[::-1]}".'),
        (f'How many letters are in "{word}"?', f'"{word}" has {len(word)} letters.'),
        (f'Write "{word}" in capital letters.', f'"{word.upper()}"'),
        (f"Order {d.food} for me from {d.restaurant}.",
         "I can't place food orders: none of the tools I have can do that."),
        (f"Buy {d.rng.randint(2, 50)} shares of {d.symbol}.",
         "I can't buy or sell shares: none of the tools I have can place trades."),
        (f"Cancel my flight {flight_number(d)}.", "I can't cancel flights: none of the tools I have can change "
                                                   "bookings. Please contact the airline."),
        (f"Turn off the lights in the {d.room}.", "I can't control the lights: none of the tools I have does that."),
        (f"Call {d.name} on the phone.", "I can't make phone calls with the tools I have."),
        (f"Hi, I'm {d.name}!", "Hi! Nice to meet you. How can I help today?"),
    ]
    return d.pick(options)


# ---------------------------------------------------------------------------------------------------------
# Parallel requests: clauses that join into one message, one call each

def clause(d, name):
    if name == "get_weather":
        c = d.city
        return f"check the weather in {c}", {"city": c}
    if name == "get_stock_price":
        s = d.symbol
        return f"get the price of {s}", {"symbol": s}
    if name == "convert_currency":
        f, t = d.rng.sample(CURRENCIES, 2)
        a = d.rng.randint(10, 2000)
        return f"convert {a} {f} to {t}", {"amount": a, "from_currency": f, "to_currency": t}
    if name == "add_todo":
        task = d.task
        return f'add "{task}" to my to-do list', {"task": task}
    if name == "set_reminder":
        task, time = d.task, d.time()
        return f"remind me to {task} at {time}", {"text": task, "time": time}
    if name == "play_music":
        song = d.song
        return f"play {song}", {"query": song}
    if name == "set_thermostat":
        t = d.pick([19, 20, 21, 22])
        return f"set the thermostat to {t} degrees", {"temperature": t}
    if name == "get_flight_status":
        f = flight_number(d)
        return f"check the status of flight {f}", {"flight_number": f}
    if name == "get_order_status":
        o = f"{d.pick(['A', 'B', 'X'])}{d.rng.randint(100000, 999999)}"
        return f"track order {o}", {"order_id": o}
    title, priority = d.ticket, d.pick(["low", "medium", "high", "urgent"])
    return f'open a {priority} priority IT ticket "{title}"', {"title": title, "priority": priority}


CLAUSE_TOOLS = ["get_weather", "get_stock_price", "convert_currency", "add_todo", "set_reminder", "play_music",
                "set_thermostat", "get_flight_status", "get_order_status", "create_support_ticket"]


def parallel_request(d):
    """(user text, [(tool, arguments), ...]): the same tool twice, or two or three different tools."""
    if d.chance(0.35):
        kind = d.pick(["weather", "stock", "translate"])
        if kind == "weather":
            a, b = d.two("city")
            text = d.pick(["What's the weather in {a} and {b}?", "Compare the weather in {a} and {b}.",
                           "How warm is it in {a} and in {b}?"]).format(a=a, b=b)
            return text, [("get_weather", {"city": a}), ("get_weather", {"city": b})]
        if kind == "stock":
            a, b = d.two("symbol")
            text = d.pick(["Get me quotes for {a} and {b}.", "How are {a} and {b} trading?",
                           "Check the prices of {a} and {b}."]).format(a=a, b=b)
            return text, [("get_stock_price", {"symbol": a}), ("get_stock_price", {"symbol": b})]
        phrase, (l1, l2) = d.phrase, d.rng.sample(LANGUAGES, 2)
        text = f'Translate "{phrase}" into {l1} and {l2}.'
        return text, [("translate_text", {"text": phrase, "target_language": l1}),
                      ("translate_text", {"text": phrase, "target_language": l2})]
    names = d.rng.sample(CLAUSE_TOOLS, 3 if d.chance(0.2) else 2)
    parts = [clause(d, name) for name in names]
    texts = [p[0] for p in parts]
    if len(texts) == 3:
        text = f"{texts[0][0].upper()}{texts[0][1:]}, {texts[1]} and {texts[2]}."
    else:
        text = d.pick(["Please {0} and {1}.", "Can you {0}, and also {1}?", "{0}. Also {1}.", "I need you to {0} "
                       "and {1}."]).format(*texts)
        text = text[0].upper() + text[1:]
    return text, [(name, p[1]) for name, p in zip(names, parts)]


# ---------------------------------------------------------------------------------------------------------
# Examples, by category

def user(text):
    return {"role": "user", "content": text}


def calls(pairs):
    return {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}}
                                                 for n, a in pairs]}


def reply(text):
    return {"role": "assistant", "content": text}


def results(d, pairs):
    """Tool messages answering `pairs`, and the answers to write from them."""
    messages, answers = [], []
    for name, arguments in pairs:
        result, answer = result_for(d, name, arguments)
        messages.append({"role": "tool", "name": name, "content": json.dumps(result, ensure_ascii=False)})
        answers.append(answer)
    return messages, " ".join(answers)


def toolset(d, needed, low=1, high=3, exclude=()):
    """The needed tools, plus low..high distractors (never the search tools), in random order."""
    others = [n for n in TOOLS if n not in needed and n not in SEARCH_TOOLS and n not in exclude]
    names = list(dict.fromkeys(needed)) + d.rng.sample(others, d.rng.randint(low, high))
    d.rng.shuffle(names)
    return names


PLAIN_TOOLS = [n for n in TOOLS if n not in SEARCH_TOOLS]
CHOICE_GROUPS = [["send_email", "create_calendar_event", "set_reminder", "add_todo"],
                 ["get_weather", "get_flight_status", "get_stock_price", "get_order_status"],
                 ["convert_currency", "get_stock_price", "calculate_loan_payment"],
                 ["book_restaurant", "create_calendar_event", "set_reminder"],
                 ["set_thermostat", "play_music", "get_weather"],
                 ["translate_text", "send_email", "create_support_ticket"]]


def single_call(d):
    text, name, arguments = ASK[d.pick(PLAIN_TOOLS)](d)
    return [user(text), calls([(name, arguments)])], toolset(d, [name], 0, 2)


def tool_choice(d):
    group = d.pick(CHOICE_GROUPS)
    text, name, arguments = ASK[d.pick(group)](d)
    return [user(text), calls([(name, arguments)])], toolset(d, group, 0, 2)


def policy_choice(d):
    text, name, arguments = (ask_kb if d.chance(0.5) else ask_web)(d)
    return [user(text), calls([(name, arguments)])], toolset(d, sorted(SEARCH_TOOLS), 0, 3)


def parallel(d):
    text, pairs = parallel_request(d)
    return [user(text), calls(pairs)], toolset(d, [n for n, _ in pairs], 0, 2)


def answer_from_result(d):
    if d.chance(0.25):
        text, pairs = parallel_request(d)
    else:
        text, name, arguments = ASK[d.pick(list(TOOLS))](d)
        pairs = [(name, arguments)]
    tool_messages, answer = results(d, pairs)
    needed = [n for n, _ in pairs]
    low = 0 if set(needed) & SEARCH_TOOLS else 1
    return [user(text), calls(pairs), *tool_messages, reply(answer)], toolset(d, needed, low, 3)


def clarification(d):
    text, name, question, _ = d.pick(CLARIFY)(d)
    return [user(text), reply(question)], toolset(d, [name], 1, 3)


def no_tool(d):
    text, answer = no_tool_request(d)
    return [user(text), reply(answer)], toolset(d, [], 2, 5, exclude={"translate_text"})


FOLLOW_UPS = {  # tool -> (argument that changes, new value, phrasings of the follow-up)
    "get_weather": lambda d, a: ("city", d.city, ["What about {v}?", "And in {v}?", "How about {v}?"]),
    "get_stock_price": lambda d, a: ("symbol", d.symbol, ["And {v}?", "What about {v}?", "Now check {v}."]),
    "convert_currency": lambda d, a: ("to_currency", d.pick([c for c in CURRENCIES if c not in (
        a["from_currency"], a["to_currency"])]), ["And in {v}?", "What would that be in {v}?"]),
    "get_flight_status": lambda d, a: ("flight_number", flight_number(d), ["Now check {v}.", "And flight {v}?"]),
    "get_order_status": lambda d, a: ("order_id", f"C{d.rng.randint(100000, 999999)}",
                                      ["What about order {v}?", "And order {v}?"]),
    "translate_text": lambda d, a: ("target_language", d.pick([x for x in LANGUAGES if x != a["target_language"]]),
                                    ["Now into {v}.", "And in {v}?"]),
}


def multi_turn(d):
    """A call that depends on earlier turns: a clarified request, or a follow-up that changes one argument."""
    if d.chance(0.5):
        text, name, question, fill = d.pick(CLARIFY)(d)
        answer_text, arguments = fill()
        return [user(text), reply(question), user(answer_text), calls([(name, arguments)])], toolset(d, [name], 1, 3)
    text, name, arguments = ASK[d.pick(list(FOLLOW_UPS))](d)
    tool_messages, answer = results(d, [(name, arguments)])
    key, value, phrasings = FOLLOW_UPS[name](d, arguments)
    second = dict(arguments, **{key: value})
    return ([user(text), calls([(name, arguments)]), *tool_messages, reply(answer),
             user(d.pick(phrasings).format(v=value)), calls([(name, second)])], toolset(d, [name], 1, 3))


CATEGORIES = {"single_call": single_call, "tool_choice": tool_choice, "policy_choice": policy_choice,
              "parallel": parallel, "multi_turn": multi_turn, "answer_from_result": answer_from_result,
              "clarification": clarification, "no_tool": no_tool}


# ---------------------------------------------------------------------------------------------------------
# Splits

def user_texts(record):
    return [m["content"] for m in record["messages"] if m["role"] == "user"]


def build_split(split, forbidden=frozenset()):
    """PER_CATEGORY[split] examples of each category, in a shuffled order; an example is redrawn when one of
    its user messages appears in `forbidden` (the training texts) or it repeats one of this split."""
    records, seen = [], set()
    for category, make in CATEGORIES.items():
        rng = random.Random(f"{SEED}:{split}:{category}")
        d = Draw(rng, split_entities(split))
        made, attempts = 0, 0
        while made < PER_CATEGORY[split]:
            attempts += 1
            if attempts > 100 * PER_CATEGORY[split]:
                raise RuntimeError(f"{split}/{category}: too few distinct examples; add phrasings or entities")
            messages, names = make(d)
            record = {"category": category, "messages": messages, "tools": [TOOLS[n] for n in names]}
            key = tuple(user_texts(record))
            if key in seen or forbidden.intersection(key):
                continue
            seen.add(key)
            records.append(record)
            made += 1
    random.Random(f"{SEED}:{split}:order").shuffle(records)
    return records


def build():
    train = build_split("train")
    test = build_split("test", frozenset(t for r in train for t in user_texts(r)))
    return train, test


def to_jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main():
    train, test = build()
    for name, records in (("train", train), ("test", test)):
        path = OUT / f"{name}.jsonl"
        path.write_text(to_jsonl(records), encoding="utf-8")
        print(f"wrote {len(records)} examples to {path}")


if __name__ == "__main__":
    main()
